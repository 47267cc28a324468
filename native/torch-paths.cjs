// Prints the LibTorch paths and flags binding.gyp needs. LIBTORCH=/path selects an
// official LibTorch 2.x (CPU or CUDA) or a PyTorch wheel's torch/ folder; without it we use
// Debian 12's libtorch-dev, whose headers and libraries sit in the system directories.
'use strict';
const fs = require('fs');
const path = require('path');

const root = process.env.LIBTORCH || '';
const what = process.argv[2];

function debian() {
  const lib = '/usr/lib/x86_64-linux-gnu';
  // Debian's libtorch links the shared oneDNN (libdnnl.so.2); with its headers (libdnnl-dev, the
  // same 2.6.3) native/src/fused_conv.cc calls that very library for fused, prepacked convs.
  const dnnl = fs.existsSync('/usr/include/oneapi/dnnl/dnnl.hpp') && fs.existsSync(path.join(lib, 'libdnnl.so'));
  return {
    include: ['/usr/include/torch/csrc/api/include'],
    libdir: lib,
    cflags: ['-D_GLIBCXX_USE_CXX11_ABI=1', ...(dnnl ? ['-DDL_HAVE_DNNL=1'] : [])],
    libs: ['-ltorch', '-ltorch_cpu', '-lc10', ...(dnnl ? ['-ldnnl'] : [])],
  };
}

function official(dir) {
  const lib = path.join(dir, 'lib');
  if (
    !fs.existsSync(path.join(lib, fs.existsSync(path.join(lib, 'libtorch.so')) ? 'libtorch.so' : 'libtorch_cpu.so'))
  ) {
    throw new Error(
      `LIBTORCH=${dir} has no lib/libtorch.so; point it at an unpacked LibTorch or at a torch package folder`,
    );
  }
  // The C++ ABI flag must match the one LibTorch was built with, or std::string symbols will not link.
  let abi = '1';
  const cfg = path.join(dir, 'share/cmake/Torch/TorchConfig.cmake');
  if (fs.existsSync(cfg)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(fs.readFileSync(cfg, 'utf8'));
    if (m) abi = m[1];
  }
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  // CUDA kernels register themselves from static initialisers: link them even though no symbol is used.
  for (const extra of ['torch_cuda', 'c10_cuda']) {
    if (fs.existsSync(path.join(lib, `lib${extra}.so`)))
      libs.push(`-Wl,--no-as-needed`, `-l${extra}`, '-Wl,--as-needed');
  }
  return {
    include: [path.join(dir, 'include'), path.join(dir, 'include/torch/csrc/api/include')],
    libdir: lib,
    cflags: [`-D_GLIBCXX_USE_CXX11_ABI=${abi}`],
    libs,
  };
}

const p = root ? official(path.resolve(root)) : debian();
const out = {
  include: p.include,
  cflags: p.cflags,
  ldflags: [`-L${p.libdir}`, `-Wl,-rpath,${p.libdir}`],
  libs: p.libs,
}[what];
if (!out) throw new Error(`usage: torch-paths.cjs include|cflags|ldflags|libs`);
console.log(out.join(' '));
