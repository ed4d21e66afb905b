"""Server pre-training on synthetic data (GPT-FL paper section 3.3) with Ray Train."""
