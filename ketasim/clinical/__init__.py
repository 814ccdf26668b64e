"""The clinical layer: a latent prefrontal synaptic state per patient, symptoms rated on
clinical scales, and the acute psychotomimetic effects (SEED-FACTS section F)."""
