//! Batch simulator for neuron models.
