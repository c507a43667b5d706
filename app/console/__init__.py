"""The committee's console (管理后台): the built Vue bundle under app/static/console, served at /console/."""
