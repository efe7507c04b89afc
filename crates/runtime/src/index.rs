//! A cache's objects by namespace and the value of one label, kept beside the reflector's store
//! from the same watch events. A reconcile reads its own children through it instead of walking
//! the whole cache: at 1,000 Shards the shard controller spent over half its CPU comparing the
//! 3,200 claims and pods of every Shard with the one it reconciled (docs/performance.md, "Children
//! by owner").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::caches::Cacheable;

type Key = (String, String);

/// Objects of a cache by `(namespace, value of label)`. Cloning shares the index.
#[derive(Clone)]
pub struct LabelIndex<K: Cacheable> {
    label: &'static str,
    state: Arc<RwLock<State<K>>>,
}

struct State<K: Cacheable> {
    by_key: HashMap<Key, HashSet<ObjectRef<K>>>,
    key_of: HashMap<ObjectRef<K>, Key>,
    /// Filled between `Init` and `InitDone` of a (re)list; replaces the index at `InitDone`, as the
    /// reflector replaces its store.
    relisting: Option<Vec<(ObjectRef<K>, Key)>>,
}

impl<K: Cacheable> LabelIndex<K> {
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            state: Arc::new(RwLock::new(State {
                by_key: HashMap::new(),
                key_of: HashMap::new(),
                relisting: None,
            })),
        }
    }

    fn key(&self, object: &K) -> Option<Key> {
        let value = object.labels().get(self.label)?;
        Some((object.namespace().unwrap_or_default(), value.clone()))
    }

    /// Takes in one watch event, before or after the store does.
    pub fn observe(&self, event: &watcher::Event<K>) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Apply(object) => {
                let reference = ObjectRef::from_obj(object);
                state.remove(&reference);
                if let Some(key) = self.key(object) {
                    state.insert(reference, key);
                }
            }
            watcher::Event::Delete(object) => state.remove(&ObjectRef::from_obj(object)),
            watcher::Event::Init => state.relisting = Some(Vec::new()),
            watcher::Event::InitApply(object) => {
                if let (Some(key), Some(listed)) = (self.key(object), state.relisting.as_mut()) {
                    listed.push((ObjectRef::from_obj(object), key));
                }
            }
            watcher::Event::InitDone => {
                let listed = state.relisting.take().unwrap_or_default();
                state.by_key.clear();
                state.key_of.clear();
                for (reference, key) in listed {
                    state.insert(reference, key);
                }
            }
        }
    }

    /// The objects of `store` in `namespace` whose label is `value`.
    pub fn get(&self, store: &Store<K>, namespace: &str, value: &str) -> Vec<Arc<K>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), value.to_string());
        let Some(references) = state.by_key.get(&key) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<K>> = references.iter().filter_map(|r| store.get(r)).collect();
        // The store's own order is by name within a namespace; keep callers deterministic.
        out.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        out
    }
}

impl<K: Cacheable> State<K> {
    fn insert(&mut self, reference: ObjectRef<K>, key: Key) {
        self.by_key
            .entry(key.clone())
            .or_default()
            .insert(reference.clone());
        self.key_of.insert(reference, key);
    }

    fn remove(&mut self, reference: &ObjectRef<K>) {
        let Some(key) = self.key_of.remove(reference) else {
            return;
        };
        if let Some(references) = self.by_key.get_mut(&key) {
            references.remove(reference);
            if references.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;

    fn object(ns: &str, name: &str, owner: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: owner.map(|o| [("owner".to_string(), o.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Feeds both the store and the index, as a watch stream does.
    fn feed(
        writer: &mut reflector::store::Writer<ConfigMap>,
        index: &LabelIndex<ConfigMap>,
        event: watcher::Event<ConfigMap>,
    ) {
        index.observe(&event);
        writer.apply_watcher_event(&event);
    }

    fn names(objects: Vec<Arc<ConfigMap>>) -> Vec<String> {
        objects.iter().map(|o| o.name_any()).collect()
    }

    #[test]
    fn children_are_found_by_owner_and_follow_relabels_deletes_and_relists() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let index = LabelIndex::new("owner");
        feed(&mut writer, &index, watcher::Event::Init);
        for o in [
            object("a", "s1-b", Some("s1")),
            object("a", "s1-a", Some("s1")),
            object("a", "s2-a", Some("s2")),
            object("b", "s1-a", Some("s1")),
            object("a", "loose", None),
        ] {
            feed(&mut writer, &index, watcher::Event::InitApply(o));
        }
        assert!(
            index.get(&store, "a", "s1").is_empty(),
            "not before the list ends"
        );
        feed(&mut writer, &index, watcher::Event::InitDone);
        assert_eq!(names(index.get(&store, "a", "s1")), ["s1-a", "s1-b"]);
        assert_eq!(names(index.get(&store, "b", "s1")), ["s1-a"]);
        assert!(index.get(&store, "a", "s3").is_empty());

        // Relabelled to another owner, then deleted.
        feed(
            &mut writer,
            &index,
            watcher::Event::Apply(object("a", "s1-b", Some("s2"))),
        );
        assert_eq!(names(index.get(&store, "a", "s1")), ["s1-a"]);
        assert_eq!(names(index.get(&store, "a", "s2")), ["s1-b", "s2-a"]);
        feed(
            &mut writer,
            &index,
            watcher::Event::Delete(object("a", "s2-a", Some("s2"))),
        );
        assert_eq!(names(index.get(&store, "a", "s2")), ["s1-b"]);

        // A relist drops what is gone meanwhile.
        feed(&mut writer, &index, watcher::Event::Init);
        feed(
            &mut writer,
            &index,
            watcher::Event::InitApply(object("a", "s1-a", Some("s1"))),
        );
        feed(&mut writer, &index, watcher::Event::InitDone);
        assert_eq!(names(index.get(&store, "a", "s1")), ["s1-a"]);
        assert!(index.get(&store, "a", "s2").is_empty());
        assert!(index.get(&store, "b", "s1").is_empty());
    }
}
