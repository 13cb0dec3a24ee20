"""The hybrid-plasticity spiking model in torch and its meta-training."""
