"""Test and demo scaffolding, shipped with the package as Beam and TFDS ship theirs: a Range-capable HTTP server, synthetic videos, shard makers."""
