"""Lab tools: learning checks and comparisons that measure the learner, kept out of the library.

python -m lab.check [state|goal|image]     the learning check (tests/test_learning_check.py)
python -m lab.augment_compare              pixel DrQ against the feature-replay augmentations
"""
