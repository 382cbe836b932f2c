"""vidshard: decode a video classification dataset once, with Apache Beam, into TFRecord shards."""

__version__ = "0.1.0"
