"""Lesson pages: the list, a lesson, its edit page and item actions, link-only access, forks."""

from django.urls import path

from inspector.lessons import question_views, views

urlpatterns = [
    path("lessons/", views.lesson_list, name="lessons"),
    path("lessons/new/", views.lesson_create, name="lesson-create"),
    path("lessons/import/", views.lesson_import, name="lesson-import"),
    path("lessons/forks/", views.lesson_forks, name="lesson-forks"),
    path("lessons/link/<str:token>/", views.lesson_link, name="lesson-link"),
    path("lessons/<uuid:lesson_id>/", views.lesson_page, name="lesson"),
    path("lessons/<uuid:lesson_id>/edit/", views.lesson_edit, name="lesson-edit"),
    path("lessons/<uuid:lesson_id>/delete/", views.lesson_delete, name="lesson-delete"),
    path(
        "lessons/<uuid:lesson_id>/co-instructors/",
        views.lesson_co_instructors,
        name="lesson-co-instructors",
    ),
    path("lessons/<uuid:lesson_id>/new-link/", views.lesson_renew_link, name="lesson-renew-link"),
    path("lessons/<uuid:lesson_id>/items/", views.item_add, name="lesson-item-add"),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/",
        views.item_update,
        name="lesson-item-update",
    ),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/move/",
        views.item_move,
        name="lesson-item-move",
    ),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/remove/",
        views.item_remove,
        name="lesson-item-remove",
    ),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/fork/",
        views.item_fork,
        name="lesson-item-fork",
    ),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/try/<int:index>/",
        views.item_try,
        name="lesson-item-try",
    ),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/questions/",
        question_views.question_add,
        name="lesson-question-add",
    ),
    path(
        "lessons/<uuid:lesson_id>/questions/<int:question_id>/",
        question_views.question_update,
        name="lesson-question-update",
    ),
    path(
        "lessons/<uuid:lesson_id>/questions/<int:question_id>/delete/",
        question_views.question_delete,
        name="lesson-question-delete",
    ),
    path(
        "lessons/<uuid:lesson_id>/questions/<int:question_id>/answer/",
        question_views.question_answer,
        name="lesson-question-answer",
    ),
    path(
        "lessons/<uuid:lesson_id>/answers/",
        question_views.lesson_answers,
        name="lesson-answers",
    ),
]
