//! Conditional neural density estimators on candle: `q(theta | x)`, `q(x | theta)`, ratio
//! classifiers and embedding networks, with their training loop and persistence.
