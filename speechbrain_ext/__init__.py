"""SpeechBrain extensions for speaker verification.

Plug-in modules for two papers: angular-margin supervised contrastive learning with
class-aware attention and MGDA balancing (Li, Mak & Meng, ICASSP 2023), and
emotion-invariant speaker embeddings with CopyPaste, a parallel cosine loss and
energy-based emotion-aware masking (Tian, Hu & Xu, 2025).
"""

__version__ = "0.1.0"
