"""What the web side and the worker agree on, torch-free: task names, the keys they share in
the cache, and the fields a result may carry besides its content."""

TASK_COMPUTE = "tokenlens.compute"  # synchronous API calls: the web process waits for it
TASK_RUN_JOB = "tokenlens.run_job"  # page work: progress and result go to the Job row
TASK_GENERATE = "tokenlens.generate_branch"  # generate to the end, each step pushed to pages
TASK_STEP_AND_REPLY = "tokenlens.step_and_reply"  # a page's step, answered on its websocket
TASK_WARM_UP = "tokenlens.warm_up"  # the embedded worker's start: load what the first asks for

LOADED_KEY = "tokenlens:loaded:{key}"  # a worker holds this model (and its facts)
GENERATING_KEY = "tokenlens:generating:{branch}"  # the lease of a branch's generation
OPERATION_KEY = "tokenlens:operation:{branch}"  # a step, undo or fork of the branch under way
STOP_KEY = "tokenlens:stop:{branch}"  # someone pressed Stop
OUTCOME_KEY = "tokenlens:generation-outcome:{branch}"  # how the last generation ended

# What a computation really cost (tokens through the model), for the web side's budget; the
# web side takes the key out of the result before anyone sees it.
COST_KEY = "_computed_tokens"
EXPIRED = "This request waited too long for a worker and was dropped; try again"
