"""The shard format: the one contract between the writer and every reader.

``schema`` (the Example's features, its encoder and its TF-free parser), ``codec`` (frame images),
``info`` (``dataset_info.json`` and opening a split), ``naming`` (shard names and layout),
``tfrecord``/``arrayrecord`` (record framing of the two file formats), ``file_adapters`` (their table).  Nothing here
imports TensorFlow or Beam, so every reader and the writer's workers share it.
"""
