"""``tf.train.Example`` message classes built with protobuf alone, without importing TensorFlow.

Beam workers and the TF-free reader serialize and parse Examples through these classes.  Their
descriptors are TensorFlow's ``example.proto``/``feature.proto`` (same package, names and field
numbers), so the bytes on the wire are exactly what ``tf.train.Example`` writes and
``tf.io.parse_single_example`` reads.  They live in a private descriptor pool so that they never
clash with TensorFlow's own registration when both are imported in one process.

Why not ``tensorflow.core.example.example_pb2``: importing TensorFlow costs seconds and hundreds
of MiB in every Beam worker process, and the GPU machine has no TensorFlow at all.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The merged contents of tensorflow/core/example/{feature,example}.proto."""
    fd = descriptor_pb2.FileDescriptorProto(name="vidshard/tf_example.proto", package="tensorflow", syntax="proto3")

    def add_list(name: str, field_type: int, packed: bool) -> None:
        msg = fd.message_type.add(name=name)
        field = msg.field.add(name="value", number=1, label=_F.LABEL_REPEATED, type=field_type)
        if packed:
            field.options.packed = True

    add_list("BytesList", _F.TYPE_BYTES, packed=False)
    add_list("FloatList", _F.TYPE_FLOAT, packed=True)
    add_list("Int64List", _F.TYPE_INT64, packed=True)

    feature = fd.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (field_name, type_name) in enumerate(
        (("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")), start=1
    ):
        feature.field.add(
            name=field_name, number=number, label=_F.LABEL_OPTIONAL, type=_F.TYPE_MESSAGE,
            type_name=f".tensorflow.{type_name}", oneof_index=0,
        )

    features = fd.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING)
    entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL, type=_F.TYPE_MESSAGE, type_name=".tensorflow.Feature")
    features.field.add(
        name="feature", number=1, label=_F.LABEL_REPEATED, type=_F.TYPE_MESSAGE,
        type_name=".tensorflow.Features.FeatureEntry",
    )

    example = fd.message_type.add(name="Example")
    example.field.add(name="features", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    return fd


_POOL = descriptor_pool.DescriptorPool()
_FILE = _POOL.Add(_file_descriptor())

Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("tensorflow.Example"))
Features = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("tensorflow.Features"))
Feature = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("tensorflow.Feature"))
