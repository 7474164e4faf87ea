// FaceFusion follows its release tags: fetch them, then check out the newest install.js names.
module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true }, path: "app",
        message: ["git fetch --tags --depth 1 origin tag 3.3.2", "git checkout 3.3.2"] } },
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "python install.py --onnxruntime {{gpu === 'nvidia' ? 'cuda' : 'default'}} --skip-conda" } }
  ]
}
