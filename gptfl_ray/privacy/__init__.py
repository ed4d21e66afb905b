"""Private aggregation for GPT-FL: secure aggregation and IBLT label-name union.

GPT-FL (Zhang et al., section 3.1) collects clients' label names by encoding them into Invertible
Bloom Lookup Tables (Goodrich and Mitzenmacher 2011) that the server sums with secure aggregation
(Bonawitz et al., CCS 2017), as in federated heavy hitters (Gascón et al. 2023).
"""
