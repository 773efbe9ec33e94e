"""Latent priors: the contract of a prior plugin and fitting one to encoded data
(:mod:`.contract`), a prior per label (:mod:`.per_label`) and attribute directions
(:mod:`.directions`)."""

from .contract import LatentSet, Prior, PriorContext, PriorFitError, PriorOptions, PriorType, encode_dataset, fit_prior

__all__ = ["LatentSet", "Prior", "PriorContext", "PriorFitError", "PriorOptions", "PriorType", "encode_dataset", "fit_prior"]
