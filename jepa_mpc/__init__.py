"""jepa-mpc: planning with learned JEPA world models in latent space."""

__version__ = "0.1.0"
