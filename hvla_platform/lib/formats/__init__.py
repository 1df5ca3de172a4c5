"""On-disk formats the platform reads and writes: MCAP (raw logs), the recording contract, the HDF5
episode and openpi's norm-stats JSON."""
