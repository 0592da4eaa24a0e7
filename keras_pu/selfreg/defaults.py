"""SelfReg's default settings, in one place: the loss, the callback and
the training recipe all take their defaults from here.

The weights are the paper's best setting, lambda_scr = lambda_ifd = 0.015
(Zhu et al., MICCAI 2024; the authors' scripts also used one lambda between
0.01 and 0.1). No warm-up: full weights from the first epoch.
"""

LAMBDA_SCR = 0.015
LAMBDA_IFD = 0.015
WARMUP_EPOCHS = 0
