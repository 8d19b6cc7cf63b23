//! Summary statistics for neuron recordings: turns voltage traces, other recorded variables
//! and spike trains into the fixed-length feature vectors that inference trains on.
