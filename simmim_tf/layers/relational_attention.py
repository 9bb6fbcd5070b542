"""Anchored relational attention: find the object the question names, then
read the regions by their offset from it."""

import keras
import numpy as np
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.multi_input_dense import MultiInputDense

# Hidden size of the MLP from an offset to per-head score biases.
OFFSET_HIDDEN = 32
# Directions the question picks for the offset between two anchors
# (`gated_between`): left/right, above/below, and two spare.
BETWEEN_DIRECTIONS = 4


def region_centres(rows, cols):
    """(rows * cols, 2) centres (x, y) of the regions, in image sides (0..1), row-major."""
    y = (np.arange(rows) + 0.5) / rows
    x = (np.arange(cols) + 0.5) / cols
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return np.stack([xx.reshape(-1), yy.reshape(-1)], axis=-1).astype("float32")


@simmim_export
class RelationalAttention(keras.layers.Layer):
    """Question → anchor position → attention over regions biased by their
    offset from the anchor (the "anchor, then compare" of SARN, Shanahan et
    al. 2018, with the anchor found by soft attention).

    1. Anchor: a query made from the question attends over the regions (one
       head); the anchor's position is the attention-weighted mean of the
       region centres (a soft argmax), so it lands between the regions an
       object covers.
    2. Relation: `num_heads` heads with queries from the question attend
       over the regions; each head's scores get a learned function (a small
       MLP) of the region's offset from the anchor: dx, dy, |dx|, |dy| and
       the squared distance. A head can then prefer the nearest object other
       than the anchor, the furthest, those to its left, ... whatever the
       question asks.
    3. With `num_anchors=2`, a second anchor finds the second object the
       question names ("is the A left of the B"), and the offset between
       the two anchors joins the output: a comparison of two positions that
       attention over one anchor's offsets does not give directly.
    4. With `read_offsets=True`, each head also reads the mean offset (dx,
       dy) from the anchor of the regions it attends to, beside their
       features: where the second object of "is the A left of the B" lies
       relative to the first, which the features alone do not say.
    5. With `refine_positions=True`, each region's position is its centre
       plus a predicted offset to the centre of the object it shows
       (`region_offsets`, a linear map of the region, in region sides), for
       the anchors and the offsets alike: positions finer than the region
       grid, which closest and furthest need (docs/reasoning.md, "Why
       positions must be precise"). The prediction starts at zero. Where
       the data has scenes, `SimMIMVQATraining`'s grounding loss trains it
       on each region's centre-offset target alone
       (`positions_from_target_only`); elsewhere the answers train it
       through the positions.
    6. With `read_anchors=True`, the features under each anchor are read as
       well (one projection, shared by the anchors), and with two anchors
       their elementwise product too: "is the A the same colour as the B"
       compares what lies under the two anchors, which the offsets alone
       do not carry.
    7. With `offsets_in_regions=True`, the offset features the score MLP
       reads are in region sides rather than image sides (ten times larger
       on a 10×10 grid), and the MLP's output starts at zero. Picking the
       nearest of two objects a few pixels apart needs a steep function of
       the offset; Adam moves a weight by about the learning rate a step,
       so in image sides the MLP needs many more steps to get that steep.
    8. With `gated_between=True` (two anchors), the question picks
       `BETWEEN_DIRECTIONS` directions (a linear map of the question to
       2-vectors) and the offset between the anchors, in region sides, is
       projected on each: "is the A left of the B" becomes the sign of one
       feature, where the plain offset leaves the answer head to learn the
       product of the question's direction and the offset. Their
       projection into the output starts at zero.

    Args:
        num_heads: int. Heads of the relation step.
        key_dim: int. Size of each head.
        grid_shape: (int, int). Rows and columns of the region grid.
        read_offsets: bool. Each head reads its regions' offset from the
            anchor as well as their features.
        num_anchors: int, 1 or 2. Anchors found from the question.
        refine_positions: bool. Region positions refined by a predicted
            offset to their object's centre.
        read_anchors: bool. The output also reads the features under each
            anchor (and their product with two anchors).
        offsets_in_regions: bool. The score MLP reads offsets in region
            sides, and its output starts at zero.
        gated_between: bool. With two anchors, the offset between them (in
            region sides) projected on directions the question picks joins
            the output.

    Call arguments:
        question: (batch, dim), the question summary (masked mean of words).
        regions: (batch, rows * cols, dim).

    Returns:
        (features, anchor_weights, relation_weights): (batch, dim), (batch,
        regions) (with two anchors (batch, 2, regions)) and (batch, heads,
        regions).

    Example:
    >>> layer = RelationalAttention(num_heads=2, key_dim=8, grid_shape=(3, 3))
    >>> f, a, w = layer(np.zeros((1, 16)), np.zeros((1, 9, 16)))
    >>> f.shape, a.shape, w.shape
    ((1, 16), (1, 9), (1, 2, 9))
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        grid_shape,
        read_offsets=False,
        num_anchors=1,
        refine_positions=False,
        read_anchors=False,
        offsets_in_regions=False,
        gated_between=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_anchors not in (1, 2):
            raise ValueError(f"num_anchors must be 1 or 2; received {num_anchors}")
        if gated_between and num_anchors != 2:
            raise ValueError(
                f"gated_between needs num_anchors=2 (an offset between two anchors); "
                f"received num_anchors={num_anchors}"
            )
        self.num_anchors = num_anchors
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.grid_shape = tuple(grid_shape)
        self.read_offsets = read_offsets
        self.refine_positions = refine_positions
        self.read_anchors = read_anchors
        self.offsets_in_regions = offsets_in_regions
        self.gated_between = gated_between
        # Set by `SimMIMVQATraining` where the grounding loss gives the
        # refined positions a target: a training choice, not saved.
        self.positions_from_target_only = False

    def build(self, question_shape, regions_shape):
        policy = self.dtype_policy
        dim = regions_shape[-1]
        inner = self.num_heads * self.key_dim
        self.question_norm = LayerNorm(1e-5, name="question_norm", dtype=policy)
        self.region_norm = LayerNorm(1e-5, name="region_norm", dtype=policy)
        self.anchor_query = keras.layers.Dense(
            self.num_anchors * self.key_dim, name="anchor_query", dtype=policy
        )
        self.anchor_key = keras.layers.Dense(self.key_dim, name="anchor_key", dtype=policy)
        self.query = keras.layers.Dense(inner, name="query", dtype=policy)
        self.key = keras.layers.Dense(inner, name="key", dtype=policy)
        self.value = keras.layers.Dense(inner, name="value", dtype=policy)
        self.output_dense = keras.layers.Dense(dim, name="output", dtype=policy)
        # The offsets (up to the grid's side) and their squared distance (up
        # to twice its square) as two tensors: an int8 model gives a
        # concatenation one scale, which rounded the offsets to 5 px on a
        # 10×10 grid (docs/export.md, "int8 and the offset features").
        self.offset_hidden = MultiInputDense(
            OFFSET_HIDDEN, activation="gelu", name="offset_hidden", dtype=policy
        )
        self.offset_bias = keras.layers.Dense(
            self.num_heads,
            kernel_initializer="zeros" if self.offsets_in_regions else "glorot_uniform",
            name="offset_bias",
            dtype=policy,
        )
        self.question_norm.build(question_shape)
        self.region_norm.build(regions_shape)
        for layer in (self.anchor_query, self.query):
            layer.build(question_shape)
        for layer in (self.anchor_key, self.key, self.value):
            layer.build(regions_shape)
        read_dim = self.num_heads * (self.key_dim + (2 if self.read_offsets else 0))
        read_dim += 4 if self.num_anchors == 2 else 0
        read_dim += self._build_options(question_shape, regions_shape)
        self.output_dense.build((question_shape[0], read_dim))
        if self.refine_positions:
            # Starts at zero: positions start at the region centres, and the
            # grounding loss moves them (a random start put them about a
            # region side off and scrambled the offsets; docs/reasoning.md).
            self.position_offset = keras.layers.Dense(
                2, kernel_initializer="zeros", name="position_offset", dtype=policy
            )
            self.position_offset.build(regions_shape)
        self.offset_hidden.build([(None, None, 4), (None, None, 1)])
        self.offset_bias.build((None, None, OFFSET_HIDDEN))

    def _build_options(self, question_shape, regions_shape):
        """Builds the anchor reads and the gated between-offsets where
        asked; returns the features they add to the output's input."""
        policy, dim, added = self.dtype_policy, regions_shape[-1], 0
        if self.read_anchors:
            self.anchor_value = keras.layers.Dense(self.key_dim, name="anchor_value", dtype=policy)
            self.anchor_value.build(regions_shape)
            added += self.key_dim * (3 if self.num_anchors == 2 else 1)
        if self.gated_between:
            self.between_directions = keras.layers.Dense(
                BETWEEN_DIRECTIONS * 2, name="between_directions", dtype=policy
            )
            self.between_directions.build(question_shape)
            # Its own projection, added to the output: an int8 model gives a
            # concatenation one scale, and these features span ±(grid side).
            # Starts at zero, so a data set with one named object (no second
            # anchor to ground) starts from the model without it.
            self.between_output = keras.layers.Dense(
                dim,
                use_bias=False,
                kernel_initializer="zeros",
                name="between_output",
                dtype=policy,
            )
            self.between_output.build((question_shape[0], BETWEEN_DIRECTIONS))
        return added

    def call(self, question, regions):
        dtype = self.compute_dtype
        q = self.question_norm(question)  # (batch, dim)
        r = self.region_norm(regions)  # (batch, regions, dim)
        batch, length = ops.shape(r)[0], ops.shape(r)[1]
        # 1. Anchors: (batch, anchors, regions) weights, then a soft argmax of the centres.
        all_anchor_weights, centres, flat = self._anchors(q, r)
        # Anchors picked by matrix products, not slices: the TFLite GPU
        # delegate refuses a STRIDED_SLICE that drops an axis.
        first = np.eye(self.num_anchors * 2, 2, dtype="float32")  # the first anchor's (x, y)
        anchor = ops.matmul(flat, ops.convert_to_tensor(first))  # (batch, 2)
        # 2. Offsets of every region from the anchor, 3. the heads' read.
        offset = centres - ops.expand_dims(anchor, 1)
        read, weights = self._read(q, r, self._offset_bias(offset))
        parts = [ops.reshape(read, (batch, self.num_heads * self.key_dim))]
        if self.read_offsets:
            # (batch, heads, regions) @ (batch, regions, 2): each head's mean (dx, dy).
            moved = ops.matmul(weights, offset)
            moved = ops.reshape(ops.cast(moved, dtype), (batch, self.num_heads * 2))
            parts.append(moved)
        anchor_weights = all_anchor_weights
        if self.num_anchors == 2:
            second_minus_first = np.array([[-1, 0], [0, -1], [1, 0], [0, 1]], "float32")
            difference = ops.matmul(flat, ops.convert_to_tensor(second_minus_first))  # (batch, 2)
            between = ops.concatenate([difference, ops.abs(difference)], axis=-1)
            parts.append(ops.cast(between, dtype))
        if self.read_anchors:
            parts += self._under_anchors(all_anchor_weights, r)
        if self.num_anchors == 1:
            anchor_weights = ops.reshape(all_anchor_weights, (batch, length))
        features = self.output_dense(ops.concatenate(parts, axis=-1))
        if self.gated_between:
            features = features + self.between_output(self._along_directions(q, difference))
        return (
            features,
            ops.cast(anchor_weights, dtype),
            ops.cast(weights, dtype),
        )

    def _anchors(self, q, r):
        """(anchor weights (batch, anchors, regions), region positions,
        anchor positions flattened (batch, anchors * 2))."""
        batch = ops.shape(r)[0]
        scale = ops.cast(1.0 / np.sqrt(self.key_dim), self.compute_dtype)
        anchor_queries = ops.reshape(self.anchor_query(q), (batch, self.num_anchors, self.key_dim))
        anchor_scores = ops.matmul(anchor_queries, ops.transpose(self.anchor_key(r), (0, 2, 1)))
        all_anchor_weights = ops.softmax(ops.cast(anchor_scores * scale, "float32"), axis=-1)
        centres = self.region_positions(r)  # (batch or 1, regions, 2)
        anchors = ops.matmul(all_anchor_weights, centres)  # (batch, anchors, 2)
        return all_anchor_weights, centres, ops.reshape(anchors, (batch, self.num_anchors * 2))

    def _offset_bias(self, offset):
        """(batch, heads, regions) score bias from each region's offset to
        the anchor: the offsets (batch, regions, 4) and the squared distance
        (batch, regions, 1) apart (see build)."""
        dtype = self.compute_dtype
        scaled = offset
        if self.offsets_in_regions:
            rows, cols = self.grid_shape
            scaled = offset * ops.convert_to_tensor(np.array([cols, rows], "float32"))
        linear = ops.cast(ops.concatenate([scaled, ops.abs(scaled)], axis=-1), dtype)
        squared = ops.cast(ops.sum(scaled * scaled, axis=-1, keepdims=True), dtype)
        bias = self.offset_bias(self.offset_hidden([linear, squared]))  # (b, R, heads)
        return ops.transpose(bias, (0, 2, 1))  # (batch, heads, regions)

    def _read(self, q, r, bias):
        """Each head's read (batch, heads, 1, key_dim) and its weights
        (batch, heads, regions)."""
        dtype = self.compute_dtype
        batch, length = ops.shape(r)[0], ops.shape(r)[1]
        scale = ops.cast(1.0 / np.sqrt(self.key_dim), dtype)
        queries = ops.reshape(self.query(q), (batch, self.num_heads, 1, self.key_dim))
        keys = ops.transpose(
            ops.reshape(self.key(r), (batch, length, self.num_heads, self.key_dim)), (0, 2, 3, 1)
        )  # (batch, heads, key_dim, regions)
        values = ops.transpose(
            ops.reshape(self.value(r), (batch, length, self.num_heads, self.key_dim)), (0, 2, 1, 3)
        )  # (batch, heads, regions, key_dim)
        scores = ops.squeeze(ops.matmul(queries * scale, keys), 2)  # (batch, heads, regions)
        scores = ops.cast(scores, "float32") + ops.cast(bias, "float32")
        weights = ops.softmax(scores, axis=-1)
        read = ops.matmul(ops.expand_dims(ops.cast(weights, dtype), 2), values)  # (b, h, 1, k)
        return read, weights

    def _under_anchors(self, all_anchor_weights, r):
        """What lies under each anchor, (batch, anchors * key_dim), and for
        two anchors the product of their reads."""
        dtype = self.compute_dtype
        batch = ops.shape(r)[0]
        # (batch, anchors, regions) @ (batch, regions, key_dim)
        under = ops.matmul(ops.cast(all_anchor_weights, dtype), self.anchor_value(r))
        under_flat = ops.reshape(under, (batch, self.num_anchors * self.key_dim))
        if self.num_anchors != 2:
            return [under_flat]
        # The two anchors' reads picked by matrix products (no slices; see call).
        k = self.key_dim
        pick = np.eye(2 * k, dtype="float32")
        first_read = ops.matmul(under_flat, ops.convert_to_tensor(pick[:, :k], dtype))
        second_read = ops.matmul(under_flat, ops.convert_to_tensor(pick[:, k:], dtype))
        return [under_flat, first_read * second_read]

    def _along_directions(self, q, difference):
        """(batch, directions): the offset between the anchors, in region
        sides, along each direction the question picks."""
        batch = ops.shape(q)[0]
        rows, cols = self.grid_shape
        sides = ops.convert_to_tensor(np.array([cols, rows], "float32"))
        offset_sides = ops.reshape(difference * sides, (batch, 2, 1))
        directions = ops.reshape(
            ops.cast(self.between_directions(q), "float32"), (batch, BETWEEN_DIRECTIONS, 2)
        )
        along = ops.matmul(directions, offset_sides)  # (batch, directions, 1)
        return ops.cast(ops.reshape(along, (batch, BETWEEN_DIRECTIONS)), self.compute_dtype)

    def region_positions(self, normed_regions):
        """(batch or 1, regions, 2) float32 positions (x, y) in image sides:
        the region centres, moved by the predicted offset to their object's
        centre with `refine_positions`."""
        centres = ops.convert_to_tensor(region_centres(*self.grid_shape), dtype="float32")
        centres = ops.expand_dims(centres, 0)
        if not self.refine_positions:
            return centres
        rows, cols = self.grid_shape
        to_image = ops.convert_to_tensor(np.array([1 / cols, 1 / rows], "float32"))
        moved = ops.cast(self.position_offset(normed_regions), "float32")
        if self.positions_from_target_only:
            # The grounding loss's centre-offset target alone moves them (the
            # recipe measured with scenes); without it the answers' gradient
            # trains them (benchmarks/results/without_scenes).
            moved = ops.stop_gradient(moved)
        return centres + moved * to_image

    def region_offsets(self, regions):
        """(batch, regions, 2) float32: each region's predicted offset to the
        centre of the object it shows, in region sides (`refine_positions`)."""
        return ops.cast(self.position_offset(self.region_norm(regions)), "float32")

    def compute_output_spec(self, question, regions):
        anchors = regions.shape[:1] + ((2,) if self.num_anchors == 2 else ()) + regions.shape[1:2]
        return (
            keras.KerasTensor(question.shape, dtype=self.compute_dtype),
            keras.KerasTensor(anchors, dtype=self.compute_dtype),
            keras.KerasTensor(
                (regions.shape[0], self.num_heads, regions.shape[1]), dtype=self.compute_dtype
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "grid_shape": list(self.grid_shape),
                "read_offsets": self.read_offsets,
                "num_anchors": self.num_anchors,
                "refine_positions": self.refine_positions,
                "read_anchors": self.read_anchors,
                "offsets_in_regions": self.offsets_in_regions,
                "gated_between": self.gated_between,
            }
        )
        return config
