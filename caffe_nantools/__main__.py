import sys

from caffe_nantools.cli import main

sys.exit(main())
