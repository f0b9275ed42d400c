//! The town's 2021 plan as shipped (`workflows/plans/shaba-2021.csv`, transcribed from the seed's
//! attachment) reads into the seed's items under its key tasks, counted from the seed by hand:
//! 12 key tasks (the seed numbers them （一）…（十三） and has no （四）) and 33 work items.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bihuan_core::plan::{Due, PlanItem, columns_of, parse_items};
use chrono::NaiveDate;

fn seed() -> Vec<PlanItem> {
    let text = include_str!("../../../workflows/plans/shaba-2021.csv");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let rows: Vec<(usize, Vec<String>)> = reader
        .records()
        .enumerate()
        .map(|(i, r)| (i + 1, r.unwrap().iter().map(str::to_owned).collect()))
        .collect();
    let columns = columns_of(&rows[0].1, 1).unwrap();
    parse_items(rows.into_iter().skip(1), columns).unwrap()
}

#[test]
fn the_seed_has_its_items_under_its_key_tasks() {
    let items = seed();
    assert_eq!(items.len(), 33);
    let mut keys: Vec<&str> = items.iter().map(|i| i.key_task.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 12);
    let per_key: Vec<usize> = keys
        .iter()
        .map(|k| items.iter().filter(|i| i.key_task == *k).count())
        .collect();
    assert_eq!(per_key, [5, 4, 7, 1, 2, 2, 5, 1, 1, 2, 2, 1]);
    assert!(
        keys[0].starts_with("（一）")
            && keys[3].starts_with("（五）")
            && keys[11].starts_with("（十三）")
    );

    // Counted in the seed: 10 cells 持续推进, 3 按时序推进, 20 dates.
    let ongoing = items.iter().filter(|i| i.due == Due::Ongoing).count();
    let scheduled = items.iter().filter(|i| i.due == Due::Scheduled).count();
    assert_eq!(
        (ongoing, scheduled, items.len() - ongoing - scheduled),
        (10, 3, 20)
    );

    let first = &items[0];
    assert_eq!(first.lead_units, ["区政府职转办", "区司法局"]);
    assert_eq!(first.co_units, ["黔江区沙坝镇人民政府"]);
    let good_bad = items.iter().find(|i| i.title.contains("好差评")).unwrap();
    assert_eq!(
        good_bad.lead_units,
        ["区行政服务中心", "区级有关部门", "黔江区沙坝镇人民政府"]
    );
    assert!(good_bad.co_units.is_empty());
    assert_eq!(good_bad.due, Due::Ongoing);
    // The merged key-task cell over an empty line: （六）'s first item keeps its key task.
    let cross = items
        .iter()
        .find(|i| i.title.starts_with("贯彻落实《重庆市"))
        .unwrap();
    assert!(cross.key_task.starts_with("（六）"));
    assert_eq!(cross.due, Due::Scheduled);
    // The bookmark markers of the original are gone.
    let filing = items
        .iter()
        .find(|i| i.title.starts_with("逐项梳理"))
        .unwrap();
    assert_eq!(
        filing.due,
        Due::Date(NaiveDate::from_ymd_opt(2021, 12, 31).unwrap())
    );
    assert!(
        items
            .iter()
            .all(|i| !i.co_units.iter().any(|u| u.contains("bookmark")))
    );
    let one_stop = items
        .iter()
        .find(|i| i.title.starts_with("有序扩大增量"))
        .unwrap();
    assert_eq!(
        one_stop.co_units.len(),
        7,
        "、 and ， both separate: {:?}",
        one_stop.co_units
    );
}
