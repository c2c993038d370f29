"""Hidden-capability elicitation: over-prompting, latent intervention and CFG, as options of the one sampler."""
