// Lesson page: a suggested prompt's chip copies its text (without JavaScript it is plain text).
document.addEventListener("click", (event) => {
  const chip = event.target.closest("[data-copy]");
  if (!chip || !navigator.clipboard) return;
  navigator.clipboard.writeText(chip.dataset.copy).then(() => {
    chip.classList.add("copied");
    setTimeout(() => chip.classList.remove("copied"), 1200);
  });
});

// Edit page: "fill in the sampling stages" puts the pipeline's stages in a question's choices
// (the instructor then marks the right one with *) and makes it a multiple-choice question.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-fill-stages]");
  if (!button) return;
  const choices = document.getElementById(button.dataset.fillStages);
  const kind = document.getElementById(button.dataset.kind);
  if (choices) choices.value = button.dataset.stages;
  if (kind) kind.value = "multiple_choice";
});
