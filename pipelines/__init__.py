"""Apache Beam pipelines of vidshard (installed as ``vidshard.pipelines``)."""
