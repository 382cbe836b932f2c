"""``vidshard bench``: vidshard's path against the tutorial's, on the same videos, in one run."""
