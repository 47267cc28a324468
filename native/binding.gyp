{
  "targets": [
    {
      "target_name": "deeplab_torch",
      "sources": ["src/addon.cc", "src/allocator.cc", "src/depthwise.cc", "src/distributed.cc", "src/fused_conv.cc", "src/ops.cc", "src/tensor.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node torch-paths.cjs include)",
        "shim"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "<!@(node torch-paths.cjs cflags)"],
      "ldflags": ["<!@(node torch-paths.cjs ldflags)"],
      "libraries": ["<!@(node torch-paths.cjs libs)"]
    }
  ]
}
