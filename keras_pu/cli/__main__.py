import sys

from keras_pu.cli.main import main

sys.exit(main())
