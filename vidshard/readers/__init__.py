"""The reader wing: every way to read a vidshard output, over one record decoding.

- :mod:`~vidshard.readers.tf_data`: ``make_dataset``, a ``tf.data.Dataset`` (TensorFlow);
- :mod:`~vidshard.readers.numpy_reader`: ``ShardReader``, NumPy batches without TensorFlow;
- :mod:`~vidshard.readers.torch_data`: PyTorch's iterable and map-style datasets (PyTorch);
- :mod:`~vidshard.readers.random_access`: an ArrayRecord split by key, and its per-epoch clip decoder;
- :mod:`~vidshard.readers.grain_data`: a ``grain.MapDataset`` over it (Grain);
- :mod:`~vidshard.readers.records`: the one record decoding of the TF-free readers, and the element
  they all yield: ``(frames, label)``, or ``(frames, label, video_id)`` with ``with_ids=True``.

Files are opened through :mod:`vidshard.format.file_adapters` (the table the writer uses too),
frames decoded by :mod:`vidshard.format.codec`, clips augmented by :mod:`vidshard.augment`'s rule.
Nothing is imported here, so ``import vidshard.readers.numpy_reader`` never imports TensorFlow,
PyTorch or Grain; :func:`vidshard.load` picks a reader by name.
"""
