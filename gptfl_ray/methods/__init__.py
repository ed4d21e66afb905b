"""The methods users name, composed from the stages: plain FL, GPT-FL, FGL."""
