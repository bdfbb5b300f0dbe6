"""Model work as the web side knows it: the catalog, jobs, sending and waiting (dispatch),
the compute budget, rates and caps, leases, worker heartbeats, job expiry."""
