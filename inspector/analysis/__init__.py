"""The analyses: the tokens page and the endpoints for tokenization, distributions, attention,
head clusters, attribution, embeddings, the vocabulary and the logit lens; jobs."""
