// FaceFusion at a pinned release into app/, with the ONNX runtime for the machine's GPU.
module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true },
        message: "git clone --branch 3.0.0 --depth 1 https://github.com/facefusion/facefusion app" } },
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "python install.py --onnxruntime {{gpu === 'nvidia' ? 'cuda' : 'default'}} --skip-conda" } }
  ]
}
