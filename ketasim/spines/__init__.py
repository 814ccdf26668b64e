"""The spine layer: a stochastic, spatial engine of dendritic spines per branch, driven by the signalling layer, and the imaging assays that observe it."""
