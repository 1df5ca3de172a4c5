"""Raw partition → synchronised HDF5 episodes at the target fps, with episode QA."""
