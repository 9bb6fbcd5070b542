"""Reading the operators and tensors of a .tflite file (no TensorFlow needed)."""

import dataclasses

from ai_edge_litert import schema_py_generated as schema

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
BUILTIN_OP_NAMES = frozenset(_OP_NAMES.values())
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclasses.dataclass
class TensorInfo:
    name: str
    shape: tuple
    shape_signature: tuple  # -1 marks a dynamic dimension
    type: str
    is_const: bool


@dataclasses.dataclass
class OpInfo:
    name: str  # e.g. "SOFTMAX", or "CUSTOM:FlexEinsum"
    inputs: list
    outputs: list
    options: object  # the flatbuffer options table, or None


def read_ops(path_or_bytes):
    """All operators of every subgraph, with their input and output tensors."""
    buf = path_or_bytes
    if isinstance(path_or_bytes, str):
        with open(path_or_bytes, "rb") as f:
            buf = f.read()
    model = schema.Model.GetRootAs(buf, 0)
    ops = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)

        def tensor(i, graph=graph):
            if i < 0:
                return None
            t = graph.Tensors(i)
            buffer = model.Buffers(t.Buffer())
            is_const = buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)
            sig = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else t.ShapeAsNumpy()
            return TensorInfo(
                name=t.Name().decode(),
                shape=tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else ())),
                shape_signature=tuple(int(d) for d in (sig if t.ShapeLength() else ())),
                type=_TYPE_NAMES.get(t.Type(), str(t.Type())),
                is_const=bool(is_const),
            )

        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = _OP_NAMES.get(builtin, str(builtin))
            if name == "CUSTOM":
                name = f"CUSTOM:{code.CustomCode().decode()}"
            ops.append(
                OpInfo(
                    name=name,
                    inputs=[tensor(int(i)) for i in op.InputsAsNumpy()]
                    if op.InputsLength()
                    else [],
                    outputs=[tensor(int(i)) for i in op.OutputsAsNumpy()]
                    if op.OutputsLength()
                    else [],
                    options=op.BuiltinOptions(),
                )
            )
    return ops


def non_builtin_ops(ops):
    """Names of Flex (SELECT_TF_OPS) and custom ops: none may reach a device."""
    return sorted({op.name for op in ops if op.name.startswith("CUSTOM")})
