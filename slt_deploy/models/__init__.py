"""Models: recipes (TOML) and the networks they build, on norse
(:mod:`.zoo`, the default training framework) or lava-dl's slayer
(:mod:`.slayer`)."""

from .zoo import (LIFNeuron, Recipe, SpikingNetwork, TrainSettings, available_models, load_recipe,
                  recipe_from_dict)


def build_model(recipe: Recipe):
    """A freshly initialised network for ``recipe`` (seed torch first for
    reproducibility): a norse :class:`~.zoo.SpikingNetwork`, or for
    ``recipe.framework == "lava-dl"`` a slayer network
    (:class:`~.slayer.SlayerNetwork`)."""
    if recipe.framework == "norse":
        return SpikingNetwork(recipe)
    from .slayer import build_slayer_model, check_framework  # defers lava-dl's import to slayer models

    check_framework(recipe.framework)
    return build_slayer_model(recipe)


__all__ = ["Recipe", "TrainSettings", "SpikingNetwork", "LIFNeuron", "available_models", "build_model", "load_recipe",
           "recipe_from_dict"]
