// FaceFusion at the release install.js pins (3.0.0, the one the community launcher uses): fetched and checked out.
module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true }, path: "app",
        message: ["git fetch --tags --depth 1 origin tag 3.0.0", "git checkout 3.0.0"] } },
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "python install.py --onnxruntime {{gpu === 'nvidia' ? 'cuda' : 'default'}} --skip-conda" } }
  ]
}
