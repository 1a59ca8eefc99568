"""Model optimization simulation: batched short optimizations of many candidates on a verification set."""
