import numpy as np, h5py
x = np.random.RandomState(0).randn(32, 6).astype(np.float32); x[9, 2] = np.nan
y = x.sum(1, keepdims=True).astype(np.float32)
with h5py.File("train.h5", "w") as f: f["data"], f["label"] = x, y
open("train.txt", "w").write("train.h5\n")
open("net.prototxt", "w").write('''name: "reg"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "train.txt" batch_size: 4 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }
''')
open("solver.prototxt", "w").write('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 20\ndisplay: 10\nsnapshot_prefix: "snap"\n')
