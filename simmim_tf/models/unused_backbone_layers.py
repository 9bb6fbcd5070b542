"""Tasks that use part of a shared `SimMIMBackbone` leave the rest out of
their trainable variables."""

# The fusion layers: what a task that reads only the image encoder (and
# perhaps the question encoder) does not use.
FUSION_LAYERS = (
    "visual_attention",
    "textual_attention",
    "region_mlp",
    "semantic_memory",
    "relational_attention",
    "final_norm",
)


def refining_relational_attention(backbone):
    """The backbone's `RelationalAttention` where it refines positions
    (its `refine_positions` option), else None."""
    if not (backbone.relational and backbone.relational["refine_positions"]):
        return None
    return backbone.get_layer("relational_attention")


class UnusedBackboneLayers:
    """A `keras.Model` mixin: the backbone layers named in `UNUSED_LAYERS`
    get no gradients and no weight decay, without touching their own
    `trainable` flags, so that a model sharing the backbone that does train
    them still does. Their variables move to `non_trainable_weights` (saved
    as before). A task overrides `_unused_variables` to choose otherwise.
    """

    UNUSED_LAYERS = FUSION_LAYERS

    def _unused_variables(self):
        backbone = getattr(self, "backbone", None)
        if backbone is None:
            return []
        names = [n for n in self.UNUSED_LAYERS if n in backbone._layer_names]
        return [v for n in names for v in backbone.get_layer(n).weights]

    @property
    def trainable_weights(self):
        """The task's trainable weights, without those of `UNUSED_LAYERS`."""
        unused = {id(v) for v in self._unused_variables()}
        return [v for v in super().trainable_weights if id(v) not in unused]

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_weights(self):
        return super().non_trainable_weights + self._unused_trainable()

    @property
    def non_trainable_variables(self):
        return super().non_trainable_variables + self._unused_trainable()

    def _unused_trainable(self):
        trainable = {id(v) for v in super().trainable_weights}
        return [v for v in self._unused_variables() if id(v) in trainable]
