"""Getting recordings into the lake: the landing area and the write-once raw layer."""
