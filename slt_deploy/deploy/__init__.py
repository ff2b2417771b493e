"""Deployment: a NIR graph lowered to populations and synaptic projections
as a neuromorphic chip runs them (:mod:`.plan`), and the synapse maths every
simulator of a plan shares (:mod:`.synapses`)."""

from .plan import DeployPlan, Population, Projection, describe, plan_deployment, plan_for_graph

__all__ = ["DeployPlan", "Population", "Projection", "describe", "plan_deployment", "plan_for_graph"]
