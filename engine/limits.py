"""The limits and choices both sides need: torch-free, so the web side validates requests with
the same numbers the worker enforces, without importing a framework."""

ENCODINGS = ("uint8", "float16")  # how attention maps are packed for the browser
MAX_CELLS = 64 * 2**20  # attention values one request may hold (256 MiB in float32)
ATTRIBUTION_METHODS = {
    "attention": (
        "How much the last layer's attention heads (averaged) look at each token from the "
        "explained position: cheap, but looking is not the same as influencing."
    ),
    "rollout": (
        "Attention followed down through every layer (each layer's heads averaged, plus the "
        "residual path): how much of each token's information can reach the explained position."
    ),
    "saliency": (
        "How sensitive the target's log-probability is to each token (the size of its "
        "gradient): a small change to a high-scoring token would move the prediction most."
    ),
    "input_x_gradient": (
        "Each token's embedding times its gradient: a one-step estimate of how much the token "
        "raised (positive) or lowered (negative) the target's log-probability."
    ),
    "integrated_gradients": (
        "Each token's share of the change in the target's log-probability from a text of "
        "blanks to the real text; the shares add up to that change (up to the convergence "
        "delta, which by default is refined until it is at most 5 % of the change)."
    ),
}
MAX_STEPS = 128  # integrated gradients' path, when a fixed number of steps is asked for
DEFAULT_STEPS = None  # integrated gradients refine their path until it converges (AUTO_*)
AUTO_FIRST_STEPS = 32  # the adaptive path's first round: what the budget charges up front
AUTO_MAX_STEPS = 320  # the adaptive path stops refining here, converged or not
PRECISIONS = ("float32", "bfloat16")  # the gradient methods' (engine/precision.py)
AUTO_TOLERANCE = 0.05  # of |f(text) - f(baseline)|: the adaptive path's target for its delta
MAX_TOP_N = 100  # candidates recorded per step
MAX_DRAWS = 200  # seeded draws per rule in a sampling anatomy
MAX_POSITIONS = 1024  # positions drawn by the embeddings panel
MAX_CLUSTERS = 8
MAX_SEED = 2**32 - 1  # numpy's RandomState seeds UMAP and k-means
MAX_TOP_K = 50  # tokens per depth in the logit lens
MAX_CHOSEN = 20  # tokens followed through the lens
MAX_STOP_SEQUENCES = 8
GRAPH_RULES = ("top_k", "threshold")  # which links the attention graph draws
MAX_GRAPH_K = 8  # strongest links per query row (and head) in the attention graph
DEFAULT_GRAPH_K = 3
MIN_GRAPH_THRESHOLD = 0.01  # a row sums to 1: at most 100 links per row and head
DEFAULT_GRAPH_THRESHOLD = 0.3
# Edges one attention graph sends: the strongest max_edges of those its rule lets through.
# The default is what the page draws (bench/attention.py: headless Chromium with software
# WebGL draws ~4,000 arcs a second, plus the scene); the bound is for the API's downloads.
DEFAULT_GRAPH_MAX_EDGES = 4_000
MAX_GRAPH_EDGES = 100_000
