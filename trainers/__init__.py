"""Trainer modules nnU-Net finds through nnUNet_extTrainer (see nnunet_polydice_trainers.py)."""
