"""The paper's network: shared feature extraction, grouped feature learning, 3D recovery."""
