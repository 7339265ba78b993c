"""The native (plain-torch) attack engine: per-norm steps, losses, PGD/FGSM/BIM, APGD and the Square attack.

Used by the native attack plugins, the attack-failure indicators and the defences' adversarial training.
"""
