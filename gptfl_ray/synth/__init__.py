"""Synthetic data for GPT-FL (paper sections 3.1-3.2): label names -> prompts -> generators -> store.

Stages, each reading what the one before wrote into the run directory:
`labels` (the distinct class names the server receives), `prompts` (templates, multi-domain
or LLM-expanded prompts with a guidance scale drawn in [1, 5]), `pipeline` (a Ray Data actor pool
runs one generator over the prompts and writes Parquet shards), `store` (reads them back).
"""
