"""Prefrontal circuit activity and its calcium imaging (issue 5, the acute and sustained
paths): a batched rate network whose recurrent excitation follows the spine layer's
functional synapse density and whose excitability follows the signalling layer's
activity drive."""
