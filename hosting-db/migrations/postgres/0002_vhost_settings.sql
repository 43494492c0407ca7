-- Settings the web-server renderers need beyond the seeds' website_configs.
ALTER TABLE website_configs ADD COLUMN www_redirect TEXT NOT NULL DEFAULT 'none';
ALTER TABLE website_configs ADD COLUMN extra_directives TEXT NOT NULL DEFAULT '[]';
