"""The Fusion Lab: train the paper's model live on a world whose rules you choose (`worlds`)."""
