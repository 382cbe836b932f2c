"""Models, training and evaluation of vidshard (installed as ``vidshard.models``)."""
