module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true }, path: "app", message: "git pull" } },
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "pip install -r requirements.txt" } }
  ]
}
