"""``ketasim analyze``: a lab's own files through the statistics and report of a run."""
