// Lesson page: a suggested prompt's chip copies its text (without JavaScript it is plain text).
document.addEventListener("click", (event) => {
  const chip = event.target.closest("[data-copy]");
  if (!chip || !navigator.clipboard) return;
  navigator.clipboard.writeText(chip.dataset.copy).then(() => {
    chip.classList.add("copied");
    setTimeout(() => chip.classList.remove("copied"), 1200);
  });
});
